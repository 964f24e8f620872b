"""Cross-cutting pieces shared by every KundenCenter service.

Only infrastructure lives here (errors, RPC, database, outbox/inbox, events,
schemas base, logging, test plugin); business code is never shared.
"""
