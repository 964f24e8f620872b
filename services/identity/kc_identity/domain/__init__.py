"""identity's rules, free of nameko: plain functions over a SQLAlchemy session or unit of work.

One module per concern, imported by name (``from kc_identity.domain import login``):
``customers`` (Kundennummer, address data), ``login`` (both realms), ``sessions``, ``throttle``
(failed-attempt limits, password re-check), ``passwords`` (service and telephone password),
``two_factor``, ``whitelist``, ``contacts``, ``notifications``, ``av_agreement``, ``staff``
(back office), ``account`` (sign-up, Passwort vergessen, e-mail confirmation, single-use links),
``closure`` (Konto schließen and erasure); ``common`` holds the hashing primitives and token
prefixes. Pure helpers without a database (address, policy, netlist, twofactor, av, vault, vies)
stay beside the package."""
