"""Checking a VAT id with the EU's VIES service, behind an interface.

Sign-up checks the *format* (and check digits) of a VAT id always (``address.vat_id``,
python-stdnum). Asking VIES whether the number is registered is network I/O to an outside
service, so it is an adapter, chosen by config ``VIES_ENABLED`` (off by default: this
machine reaches no outside service), and it runs before any transaction opens.
"""
import logging

log = logging.getLogger(__name__)


class VatChecker:
    """``check(vat_id)``: True (registered), False (VIES says invalid) or None (not known)."""

    def check(self, vat_id):
        raise NotImplementedError


class NoVatChecker(VatChecker):
    """The default: no outside check (only the format check of the address rules)."""

    def check(self, vat_id):
        return None


class ViesVatChecker(VatChecker):
    """VIES through python-stdnum's ``check_vies`` (needs its SOAP client, ``zeep``)."""

    def __init__(self, timeout=10):
        self.timeout = timeout

    def check(self, vat_id):
        from stdnum.eu import vat
        try:
            return bool(vat.check_vies(vat_id, timeout=self.timeout)["valid"])
        except Exception:  # noqa: BLE001 - VIES is often down: never block a sign-up on it
            log.warning("VIES check of a VAT id failed; accepted on its format", exc_info=True)
            return None


def from_config(config):
    enabled = str((config or {}).get("VIES_ENABLED") or "").lower() in ("1", "true", "yes", "on")
    return ViesVatChecker() if enabled else NoVatChecker()
