// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// Devices allowed to earn rewards, by their Ethereum-style address (the meter's `device_id`).
/// The applet learns about registrations from the DeviceRegistered log, delivered to it by the
/// host's chain-event strategy, so the event is the contract's real interface.
contract DeviceRegistry {
    address public immutable admin;
    mapping(address => bool) public isRegistered;

    event DeviceRegistered(address indexed device);

    error NotAdmin(address caller);
    error AlreadyRegistered(address device);

    constructor() {
        admin = msg.sender;
    }

    function registerDevice(address device) external {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        if (isRegistered[device]) revert AlreadyRegistered(device);
        isRegistered[device] = true;
        emit DeviceRegistered(device);
    }
}
