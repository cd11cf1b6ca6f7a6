// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {DeviceRegistry} from "./DeviceRegistry.sol";

/// Binds a registered device to the owner wallet that receives its rewards. Only registered
/// devices can be bound, so a binding always names a device the registry knows.
contract DeviceBinding {
    DeviceRegistry public immutable registry;
    mapping(address => address) public ownerOf;

    event DeviceBound(address indexed device, address indexed owner);

    error NotAdmin(address caller);
    error NotRegistered(address device);
    error ZeroOwner();

    constructor(DeviceRegistry registry_) {
        registry = registry_;
    }

    function bindDevice(address device, address owner) external {
        if (msg.sender != registry.admin()) revert NotAdmin(msg.sender);
        if (!registry.isRegistered(device)) revert NotRegistered(device);
        if (owner == address(0)) revert ZeroOwner();
        ownerOf[device] = owner;
        emit DeviceBound(device, owner);
    }
}
