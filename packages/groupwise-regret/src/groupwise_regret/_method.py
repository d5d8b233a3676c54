"""Registry record for ``papershelf list`` / ``papershelf repro`` (imports nothing heavy)."""

from papershelf.registry import MethodInfo

METHOD = MethodInfo(
    name="groupwise-regret",
    title="Oracle Efficient Algorithms for Groupwise Regret",
    authors=(
        "Krishna Acharya",
        "Eshwar Ram Arunachaleswaran",
        "Sampath Kannan",
        "Aaron Roth",
        "Juba Ziani",
    ),
    venue="ICLR 2024",
    year=2024,
    arxiv="2310.04652",
    code_url="https://github.com/krishnacharya/multidecomp",
    claim=(
        "one online ridge learner per group mixed by sleeping-experts AdaNormalHedge has lower "
        "regret than a single online ridge learner on every group"
    ),
    demo="groupwise_regret.demo:run",
    kind="estimator",
)
