"""Rewards across machines: `ppocoder sandbox-serve` (this host's sandboxed pool behind HTTP),
the client that spreads a trainer's jobs over such servers, and a client for SandboxFusion's
/run_code. See docs/reward-servers.md."""
