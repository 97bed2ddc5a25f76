// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/**
 * @notice An ERC20 whose `transfer` fails for chosen recipients, the ways real tokens fail:
 * a revert (USDC/USDT blocklists, paused tokens), a `false` return (old tokens), or burning
 * all the gas it is given (a recipient hook gone wrong).
 */
contract BlockingTokenMock is ERC20 {
    enum Mode {
        None,
        Revert,
        ReturnFalse,
        BurnGas
    }

    error BlockingTokenMockBlocked(address to);

    mapping(address => Mode) public modeOf;

    constructor() ERC20("Blocking", "BLK") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function setMode(address account, Mode mode) external {
        modeOf[account] = mode;
    }

    function transfer(address to, uint256 value) public override returns (bool) {
        Mode mode = modeOf[to];
        if (mode == Mode.Revert) revert BlockingTokenMockBlocked(to);
        if (mode == Mode.ReturnFalse) return false;
        if (mode == Mode.BurnGas) {
            uint256 sink;
            while (true) {
                sink = uint256(keccak256(abi.encode(sink)));
            }
        }
        return super.transfer(to, value);
    }
}
