"""Registry record for ``papershelf`` (imports nothing heavy)."""

from papershelf.registry import MethodInfo

METHOD = MethodInfo(
    name="monna",
    title="Robust Collaborative Learning with Linear Gradient Overhead",
    authors=(
        "Sadegh Farhadkhani",
        "Rachid Guerraoui",
        "Nirupam Gupta",
        "Lê-Nguyên Hoang",
        "Rafael Pinot",
        "John Stephan",
    ),
    venue="ICML 2023",
    year=2023,
    arxiv="2209.10931",
    code_url="https://github.com/LPD-EPFL/robust-collaborative-learning",
    claim="with 3 Byzantine of 13 nodes on heterogeneous digits, MoNNA keeps honest accuracy near attack-free D-SGD under every attack, where averaging collapses",
    demo="monna.demo:run",
    kind="algorithm",
)
