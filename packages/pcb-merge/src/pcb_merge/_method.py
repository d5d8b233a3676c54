"""Registry record of pcb-merge (imports nothing heavy)."""

from papershelf.registry import MethodInfo

METHOD = MethodInfo(
    name="pcb-merge",
    title="Parameter Competition Balancing for Model Merging",
    authors=(
        "Guodong Du",
        "Junlin Lee",
        "Jing Li",
        "Runhua Jiang",
        "Yifei Guo",
        "Shuyang Yu",
        "Hanting Liu",
        "Sim Kuan Goh",
        "Ho-Kin Tang",
        "Daojing He",
        "Min Zhang",
    ),
    venue="NeurIPS 2024",
    year=2024,
    arxiv="2410.02396",
    code_url="https://github.com/duguodong7/pcb-merging",
    claim="where task optima are sparse and conflict in sign, PCB merges closer to the individual models than task arithmetic",
    demo="pcb_merge.demo:run",
    kind="algorithm",
)
