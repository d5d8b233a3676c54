"""Registry record of apg-guidance (imports nothing heavy)."""

from papershelf.registry import MethodInfo

METHOD = MethodInfo(
    name="apg-guidance",
    title="Eliminating Oversaturation and Artifacts of High Guidance Scales in Diffusion Models",
    authors=("Seyedmorteza Sadat", "Otmar Hilliges", "Romann M. Weber"),
    venue="ICLR 2025",
    year=2025,
    arxiv="2410.02416",
    code_url="",
    claim="APG keeps high guidance scales free of oversaturation (out-of-range mass, norm inflation) "
    "without losing class fidelity, where CFG oversaturates",
    demo="apg_guidance.demo:run",
    kind="algorithm",
)
