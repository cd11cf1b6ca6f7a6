// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// The reward token: a plain OpenZeppelin ERC-20 whose only issuer is one minter (the W3bstream
/// project's operator account, which sends the applet's transactions). The admin can hand the
/// minter role to another account, e.g. a new operator.
contract RewardToken is ERC20 {
    address public immutable admin;
    address public minter;

    event MinterChanged(address indexed minter);

    error NotAdmin(address caller);
    error NotMinter(address caller);

    constructor(string memory name_, string memory symbol_, address minter_) ERC20(name_, symbol_) {
        admin = msg.sender;
        minter = minter_;
        emit MinterChanged(minter_);
    }

    function setMinter(address minter_) external {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        minter = minter_;
        emit MinterChanged(minter_);
    }

    function mint(address to, uint256 amount) external {
        if (msg.sender != minter) revert NotMinter(msg.sender);
        _mint(to, amount);
    }
}
