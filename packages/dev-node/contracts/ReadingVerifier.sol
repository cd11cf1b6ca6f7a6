// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// Signature checks the applet cannot do itself: the W3bstream v1 host ABI offers no crypto, and
/// AssemblyScript has no secp256k1. The applet asks this contract through ws_call_contract
/// (eth_call: no transaction, no gas paid). The meter signs SHA-256 of the data text with ECDSA
/// and sends r||s without a recovery id, so both recovery ids are tried.
contract ReadingVerifier {
    /// The Ethereum-style address of an uncompressed public key given as X||Y (64 bytes).
    function deviceAddress(bytes calldata publicKeyXY) external pure returns (address) {
        require(publicKeyXY.length == 64, "public key must be 64 bytes X||Y");
        return address(uint160(uint256(keccak256(publicKeyXY))));
    }

    /// True when (r, s) is a secp256k1 signature of sha256(data) by `device`.
    function isSignedBy(bytes calldata data, bytes32 r, bytes32 s, address device) external pure returns (bool) {
        bytes32 digest = sha256(data);
        for (uint8 v = 27; v <= 28; v++) {
            address signer = ecrecover(digest, v, r, s);
            if (signer != address(0) && signer == device) return true;
        }
        return false;
    }
}
