"""Tollgate's benchmark harness: how much does the gateway cost over calling a provider?

    run.py            orchestration and CLI: ``python -m bench.run`` (what ``make bench`` runs)
    services.py       start, probe, measure (RSS) and stop the processes under test
    provisioning.py   a throwaway var dir with a migrated database, a tenant and an API key
    load.py           the load generator: N workers issuing requests back to back, per-request latency
    bare_proxy.py     the reference: a pass-through proxy with no auth and no records
    slow_upstream.py  the fake upstream with a slow default reply, to hold streams open
    report.py         the Markdown table written to results/latest.md

Every target is measured in the same run so the report's ratios compare like with like; the
absolute numbers drift from one run to the next on shared machines.
"""
