// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";

import {DataShareToken} from "../../../contracts/DataShareToken.sol";

/// @notice Drives DataShareToken: mints by minters and others, transfers, allowances, permits and replays.
contract TokenHandler is CommonBase, StdCheats, StdUtils {
    DataShareToken public immutable token;
    address public immutable admin;

    uint256 internal constant ACTORS = 5;
    address[ACTORS] public actors;
    uint256[ACTORS] internal keys;

    uint256 public ghostMinted;
    uint256 public unauthorizedMints;
    uint256 public replaySuccesses;
    uint256 public nonceDecreases;
    mapping(address => uint256) public lastNonce;

    struct UsedPermit {
        address owner;
        address spender;
        uint256 value;
        uint256 deadline;
        uint8 v;
        bytes32 r;
        bytes32 s;
    }

    UsedPermit[] internal _used;

    constructor(DataShareToken token_, address admin_) {
        token = token_;
        admin = admin_;
        for (uint256 i; i < ACTORS; ++i) {
            keys[i] = uint256(keccak256(abi.encode("token actor", i))) >> 2;
            actors[i] = vm.addr(keys[i]);
        }
    }

    function actorCount() external pure returns (uint256) {
        return ACTORS;
    }

    function mint(uint256 s, uint256 to, uint256 amount) external {
        // The admin (a minter) half of the time, an actor (never a minter) otherwise.
        address sender = s % 2 == 0 ? admin : actors[s % ACTORS];
        amount = bound(amount, 0, 1e30);
        vm.prank(sender);
        try token.mint(actors[to % ACTORS], amount) {
            if (sender != admin) unauthorizedMints++;
            ghostMinted += amount;
        } catch {}
    }

    function transfer(uint256 from, uint256 to, uint256 amount) external {
        address sender = actors[from % ACTORS];
        amount = bound(amount, 0, token.balanceOf(sender) + 1);
        vm.prank(sender);
        try token.transfer(actors[to % ACTORS], amount) {} catch {}
    }

    function approve(uint256 owner, uint256 spender, uint256 amount) external {
        vm.prank(actors[owner % ACTORS]);
        try token.approve(actors[spender % ACTORS], amount) {} catch {}
    }

    function transferFrom(uint256 s, uint256 from, uint256 to, uint256 amount) external {
        address spender = actors[s % ACTORS];
        address owner = actors[from % ACTORS];
        amount = bound(amount, 0, token.balanceOf(owner) + 1);
        vm.prank(spender);
        try token.transferFrom(owner, actors[to % ACTORS], amount) {} catch {}
    }

    function permit(uint256 signer, uint256 owner_, uint256 spender_, uint256 value) external {
        address owner = actors[owner_ % ACTORS];
        address spender = actors[spender_ % ACTORS];
        uint256 key = keys[signer % ACTORS];
        uint256 deadline = block.timestamp + 1 hours;
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"),
                owner,
                spender,
                value,
                token.nonces(owner),
                deadline
            )
        );
        (uint8 v, bytes32 r, bytes32 s) =
            vm.sign(key, keccak256(abi.encodePacked("\x19\x01", token.DOMAIN_SEPARATOR(), structHash)));
        try token.permit(owner, spender, value, deadline, v, r, s) {
            if (vm.addr(key) != owner) unauthorizedMints++;
            _used.push(UsedPermit(owner, spender, value, deadline, v, r, s));
        } catch {}
        _checkNonce(owner);
    }

    function replay(uint256 index) external {
        if (_used.length == 0) return;
        UsedPermit memory u = _used[index % _used.length];
        try token.permit(u.owner, u.spender, u.value, u.deadline, u.v, u.r, u.s) {
            replaySuccesses++;
        } catch {}
        _checkNonce(u.owner);
    }

    function warp(uint32 seconds_) external {
        vm.warp(block.timestamp + bound(seconds_, 1, 2 hours));
    }

    function _checkNonce(address owner) internal {
        uint256 nonce = token.nonces(owner);
        if (nonce < lastNonce[owner]) nonceDecreases++;
        lastNonce[owner] = nonce;
    }
}
