"""Registry record of balance-score (imports nothing heavy)."""

from papershelf.registry import MethodInfo

METHOD = MethodInfo(
    name="balance-score",
    title="Rethinking Evaluation Metric for Probability Estimation Models Using Esports Data",
    authors=("Euihyeon Choi", "Jooyoung Kim", "Wonkyung Lee"),
    venue="arXiv 2023",
    year=2023,
    arxiv="2309.06248",
    code_url="",
    claim=(
        "Balance is unbiased for a calibrated model at every sample size, where binned ECE is biased "
        "upward at small n, and tracks the signed true calibration error under monotone distortions"
    ),
    demo="balance_score.demo:run",
    kind="metric",
)
