"""Registry record of fair-ttts (imports nothing heavy)."""

from papershelf.registry import MethodInfo

METHOD = MethodInfo(
    name="fair-ttts",
    title="FairTTTS: A Tree Test Time Simulation Method for Fairness-Aware Classification",
    authors=("Nurit Cohen-Inger", "Lior Rokach", "Bracha Shapira", "Seffi Cohen"),
    venue="arXiv 2025",
    year=2025,
    arxiv="2501.08155",
    code_url="https://github.com/nuritci/FairTTTS",
    claim="FairTTTS lowers the demographic parity gap of a fitted forest at little or no cost in accuracy",
    demo="fair_ttts.demo:run",
    kind="estimator",
)
