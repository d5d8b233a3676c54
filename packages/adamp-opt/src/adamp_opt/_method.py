"""Registry record of adamp-opt (imports nothing heavy)."""

from papershelf.registry import MethodInfo

METHOD = MethodInfo(
    name="adamp-opt",
    title="AdamP: Slowing Down the Slowdown for Momentum Optimizers on Scale-invariant Weights",
    authors=(
        "Byeongho Heo",
        "Sanghyuk Chun",
        "Seong Joon Oh",
        "Dongyoon Han",
        "Sangdoo Yun",
        "Gyuwan Kim",
        "Youngjung Uh",
        "Jung-Woo Ha",
    ),
    venue="ICLR 2021",
    year=2021,
    arxiv="2006.08217",
    code_url="https://github.com/clovaai/AdamP",
    claim=(
        "removing the radial update component on scale-invariant (BatchNorm'd) weights stops their "
        "norm growth and keeps the late effective step size large"
    ),
    demo="adamp_opt.demo:run",
    kind="optimizer",
)
