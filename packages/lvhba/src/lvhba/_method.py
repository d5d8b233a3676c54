"""Registry record for lvhba (imports nothing heavy)."""

from papershelf.registry import MethodInfo

METHOD = MethodInfo(
    name="lvhba",
    title=(
        "Constrained Bi-Level Optimization: Proximal Lagrangian Value Function Approach "
        "and Hessian-free Algorithm"
    ),
    authors=("Wei Yao", "Chengming Yu", "Shangzhi Zeng", "Jin Zhang"),
    venue="ICLR 2024",
    year=2024,
    arxiv="2401.16164",
    code_url="https://github.com/SUSTech-Optimization/LV-HBA",
    claim=(
        "LV-HBA solves bilevel problems with coupled lower-level constraints without Hessians or "
        "lower-level solves: its cost per iteration grows linearly in n while an exact "
        "implicit-gradient method grows cubically"
    ),
    demo="lvhba.demo:run",
    kind="algorithm",
)
