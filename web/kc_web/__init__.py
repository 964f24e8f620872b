"""KundenCenter web front end: German, server-rendered, a client of the gateway's public API."""
