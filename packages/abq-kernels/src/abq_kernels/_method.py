"""Registry record for ``papershelf`` (imports nothing heavy)."""

from papershelf.registry import MethodInfo

METHOD = MethodInfo(
    name="abq-kernels",
    title="ABQ-LLM: Arbitrary-Bit Quantized Inference Acceleration for Large Language Models",
    authors=(
        "Chao Zeng",
        "Songwei Liu",
        "Yusheng Xie",
        "Hong Liu",
        "Xiaojian Wang",
        "Miao Wei",
        "Shu Yang",
        "Fangmin Chen",
        "Xing Mei",
    ),
    venue="AAAI 2025",
    year=2025,
    arxiv="2408.08554",
    code_url="https://github.com/bytedance/ABQ-LLM",
    claim="bit balance (W2*, 5 levels) and distribution-correction calibration recover low-bit quality of a quantized transformer LM",
    demo="abq_kernels.demo:run",
    kind="kernel",
)
