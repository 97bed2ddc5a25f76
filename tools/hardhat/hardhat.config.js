// Hardhat 2 network for MedRecord's SDK tests: the same fork, chain id and devnet accounts as
// Anvil and the embedded chain. Started by medrecord_sdk.testing (HardhatNode) on a free port.
module.exports = {
  solidity: '0.8.30',
  networks: {
    hardhat: {
      chainId: 31337,
      hardfork: 'prague',
      accounts: {
        mnemonic: 'test test test test test test test test test test test junk',
        count: 10,
      },
    },
  },
};
