"""Typed wrapper of DataShareToken (ERC-20 + EIP-2612 permit + minter role)."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from ._base import ContractWrapper
from ._tx import Signer, TxResult
from ._typed_data import eip712_types

__all__ = ["DataShareToken", "PermitSignature"]


@dataclass(frozen=True)
class PermitSignature:
    """An EIP-2612 permit signed by ``owner``, ready for anyone to relay."""

    owner: str
    spender: str
    value: int
    deadline: int
    v: int
    r: bytes
    s: bytes


class DataShareToken(ContractWrapper):
    """The reward token researchers pay patients with."""

    CONTRACT = "DataShareToken"

    def name(self) -> str:
        return str(self._call("name"))

    def symbol(self) -> str:
        return str(self._call("symbol"))

    def decimals(self) -> int:
        return int(self._call("decimals"))

    def total_supply(self) -> int:
        return int(self._call("totalSupply"))

    def cap(self) -> int:
        """The supply cap, or 0 when uncapped."""
        return int(self._call("cap"))

    def balance_of(self, account: str) -> int:
        return int(self._call("balanceOf", account))

    def allowance(self, owner: str, spender: str) -> int:
        return int(self._call("allowance", owner, spender))

    def nonces(self, owner: str) -> int:
        return int(self._call("nonces", owner))

    def mint(self, to: str, amount: int, *, signer: Signer | None = None) -> TxResult:
        """Mints ``amount`` to ``to``; the signer must hold MINTER_ROLE."""
        return self._send("mint", to, amount, signer=signer)

    def transfer(self, to: str, amount: int, *, signer: Signer | None = None) -> TxResult:
        return self._send("transfer", to, amount, signer=signer)

    def approve(self, spender: str, amount: int, *, signer: Signer | None = None) -> TxResult:
        return self._send("approve", spender, amount, signer=signer)

    def transfer_from(
        self, owner: str, to: str, amount: int, *, signer: Signer | None = None
    ) -> TxResult:
        return self._send("transferFrom", owner, to, amount, signer=signer)

    def sign_permit(
        self, owner: LocalAccount, spender: str, value: int, deadline: int
    ) -> PermitSignature:
        """Signs an EIP-2612 permit off-chain; the owner needs no ETH, a relayer submits it."""
        domain = {
            "name": self.name(),
            "version": "1",
            "chainId": self.w3.eth.chain_id,
            "verifyingContract": self.address,
        }
        types = eip712_types("Permit")
        message = {
            "owner": owner.address,
            "spender": spender,
            "value": value,
            "nonce": self.nonces(owner.address),
            "deadline": deadline,
        }
        signed = owner.sign_typed_data(domain, types, message)
        return PermitSignature(
            owner=str(owner.address),
            spender=spender,
            value=value,
            deadline=deadline,
            v=signed.v,
            r=signed.r.to_bytes(32, "big"),
            s=signed.s.to_bytes(32, "big"),
        )

    def permit(self, permit: PermitSignature, *, signer: Signer | None = None) -> TxResult:
        """Relays a signed permit (any account may send it)."""
        return self._send(
            "permit",
            permit.owner,
            permit.spender,
            permit.value,
            permit.deadline,
            permit.v,
            permit.r,
            permit.s,
            signer=signer,
        )

    # ------------------------------------------------------------ admin (default-admin rules)

    def default_admin(self) -> str:
        """The one DEFAULT_ADMIN_ROLE holder (OpenZeppelin AccessControlDefaultAdminRules)."""
        return str(self._call("defaultAdmin"))

    def default_admin_delay(self) -> int:
        """Seconds between starting an admin transfer and the new admin accepting it."""
        return int(self._call("defaultAdminDelay"))

    def pending_default_admin(self) -> tuple[str, int]:
        """The admin a transfer names and the time from which it may accept (zeros: none)."""
        new_admin, schedule = self._call("pendingDefaultAdmin")
        return str(new_admin), int(schedule)

    def begin_default_admin_transfer(
        self, new_admin: str, *, signer: Signer | None = None
    ) -> TxResult:
        """Step one, by the admin: names ``new_admin``, who may accept after the delay."""
        return self._send("beginDefaultAdminTransfer", new_admin, signer=signer)

    def accept_default_admin_transfer(self, *, signer: Signer | None = None) -> TxResult:
        """Step two, by the named admin, once the delay has passed."""
        return self._send("acceptDefaultAdminTransfer", signer=signer)

    def cancel_default_admin_transfer(self, *, signer: Signer | None = None) -> TxResult:
        """By the admin: drops a transfer not yet accepted."""
        return self._send("cancelDefaultAdminTransfer", signer=signer)
