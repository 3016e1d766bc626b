"""Reproducibility audits: rerun recorded stages in a sandbox and say what differs, and why.

    subjects   which recorded results to audit (the lock's, or the current keys' for --check)
    sandbox    the scratch workspace of one audited stage: its recorded inputs, by digest
    vary       the environment knobs an audit under --vary turns (reprotest's way)
    runner     runs the audited stages through the engine's Builder on a scratch store
    results    what an audit found, as data (JSON for --json)
    render     the terminal table and the Markdown report

An audit is the engine run with a different store and scratch area: the steps are the
engine's own `RunStep`s, the builder its `Builder`; nothing in the engine knows about audits.
"""
