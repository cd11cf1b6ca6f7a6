// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IERC721Receiver} from "@openzeppelin/contracts/token/ERC721/IERC721Receiver.sol";
import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";

/*
 * A local stand-in for IoTeX's ioID registration, for tests and the demo: an independent
 * implementation, written for this project from the interface that `iotexproject/ioID-contracts`
 * exposes (ioIDRegistry.register and its views, the ioID NFT's CreateIoID event and
 * deviceProject), not a copy of its code. What a device, an owner and the W3bstream node see is the
 * same: the same function signatures and selectors, the same EIP-712 permit (domain "ioIDRegistry",
 * version "1", Permit(address owner,uint256 nonce) with the device's nonce), the same event and the
 * same DID form. What it leaves out: upgradeability, the ioID store's price and pre-paid amounts,
 * ERC-6551 (each ioID's wallet is a tiny contract created here), migrate/update/remove.
 * The real contracts were checked by hand against the meter's permit (docs/w3bstream.md "ioID").
 */

/// A project's device NFT: one token per device, minted by the project's owner.
contract IoIdDeviceNFT is ERC721 {
    address public immutable projectOwner;
    uint256 public total;

    constructor(address projectOwner_) ERC721("Power Meter Device", "PMD") {
        projectOwner = projectOwner_;
    }

    function mint(address to) external returns (uint256 tokenId) {
        require(msg.sender == projectOwner, "not the project owner");
        tokenId = ++total;
        _mint(to, tokenId);
    }
}

/// The wallet each ioID gets; it holds the device NFT that was registered.
contract IoIdWalletLocal is IERC721Receiver {
    uint256 public immutable ioId;

    constructor(uint256 ioId_) {
        ioId = ioId_;
    }

    function onERC721Received(address, address, uint256, bytes calldata) external pure returns (bytes4) {
        return IERC721Receiver.onERC721Received.selector;
    }
}

/// The ioID NFT: one per registered device, owned by whoever registered it.
contract IoIdLocal is ERC721 {
    /// Same signature as the real ioID contract's event: the W3bstream node follows this topic.
    event CreateIoID(address indexed owner, uint256 id, address wallet, string did);

    address public immutable registry;
    uint256 public lastId;
    /// The project a device was registered for (0: none). The node asks this for every CreateIoID.
    mapping(address => uint256) public deviceProject;
    mapping(uint256 => address) public walletOf;

    constructor(address registry_) ERC721("ioID (local)", "IOIDL") {
        registry = registry_;
    }

    function mint(uint256 projectId, address device, address owner, string calldata did) external returns (uint256 id) {
        require(msg.sender == registry, "only the registry mints");
        id = ++lastId;
        _mint(owner, id);
        address wallet = address(new IoIdWalletLocal{salt: bytes32(id)}(id));
        walletOf[id] = wallet;
        deviceProject[device] = projectId;
        emit CreateIoID(owner, id, wallet, did);
    }
}

/// The registry an owner calls with the device's permit.
contract IoIdRegistryLocal {
    event NewDevice(address indexed device, address owner, bytes32 hash, string uri);
    event SetDeviceContract(uint256 indexed projectId, address indexed deviceContract);

    bytes32 public constant EIP712DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 public constant PERMIT_TYPEHASH = keccak256("Permit(address owner,uint256 nonce)");

    address public immutable admin;
    IoIdLocal public immutable ioID;
    bytes32 public immutable DOMAIN_SEPARATOR;

    mapping(address => uint256) public nonces;
    mapping(address => uint256) public deviceContractProject;
    mapping(address => mapping(uint256 => bool)) public registeredNFT;
    mapping(address => bytes32) private hashes;
    mapping(address => string) private uris;
    mapping(address => uint256) private ids;

    constructor() {
        admin = msg.sender;
        ioID = new IoIdLocal(address(this));
        DOMAIN_SEPARATOR = keccak256(
            abi.encode(EIP712DOMAIN_TYPEHASH, keccak256("ioIDRegistry"), keccak256("1"), block.chainid, address(this))
        );
    }

    /// The admin names a project's device NFT contract (the real system does this in its ioID store).
    function setDeviceContract(uint256 projectId, address deviceContract) external {
        require(msg.sender == admin, "only the admin");
        require(projectId != 0, "project 0 is no project");
        require(deviceContractProject[deviceContract] == 0, "contract already has a project");
        deviceContractProject[deviceContract] = projectId;
        emit SetDeviceContract(projectId, deviceContract);
    }

    /// What the device signs for an owner, without the EIP-712 prefix and domain.
    function permitHash(address owner, address device) public view returns (bytes32) {
        return keccak256(abi.encode(PERMIT_TYPEHASH, owner, nonces[device]));
    }

    /// The sender becomes the ioID's owner; v, r, s are the device's signature of the permit.
    function register(
        address deviceContract,
        uint256 tokenId,
        address device,
        bytes32 hash,
        string calldata uri,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external payable {
        require(device != address(0), "device is the zero address");
        uint256 projectId = deviceContractProject[deviceContract];
        require(projectId != 0, "invalid project");
        require(!registeredNFT[deviceContract][tokenId], "nft already used");
        require(hashes[device] == bytes32(0), "device exists");
        require(hash != bytes32(0), "empty hash");
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", DOMAIN_SEPARATOR, permitHash(msg.sender, device)));
        require(ecrecover(digest, v, r, s) == device, "invalid signature");
        nonces[device] += 1;

        hashes[device] = hash;
        uris[device] = uri;
        uint256 id = ioID.mint(projectId, device, msg.sender, documentID(device));
        ids[device] = id;
        registeredNFT[deviceContract][tokenId] = true;
        IERC721(deviceContract).safeTransferFrom(msg.sender, ioID.walletOf(id), tokenId);
        emit NewDevice(device, msg.sender, hash, uri);
    }

    function exists(address device) external view returns (bool) {
        return hashes[device] != bytes32(0);
    }

    /// "did:io:" and the address in lower-case hex.
    function documentID(address device) public pure returns (string memory) {
        return string.concat("did:io:", Strings.toHexString(device));
    }

    function documentHash(address device) external view returns (bytes32) {
        require(hashes[device] != bytes32(0), "device not exists");
        return hashes[device];
    }

    function documentURI(address device) external view returns (string memory) {
        require(hashes[device] != bytes32(0), "device not exists");
        return uris[device];
    }

    function deviceTokenId(address device) external view returns (uint256) {
        require(hashes[device] != bytes32(0), "device not exists");
        return ids[device];
    }
}
