"""Registry record for ``papershelf`` (imports nothing heavy)."""

from papershelf.registry import MethodInfo

METHOD = MethodInfo(
    name="lion-opt",
    title="Lion Secretly Solves Constrained Optimization: As Lyapunov Predicts",
    authors=("Lizhang Chen", "Bo Liu", "Kaizhao Liang", "Qiang Liu"),
    venue="ICLR 2024",
    year=2024,
    arxiv="2310.05898",
    code_url="https://github.com/google/automl/tree/master/lion",
    claim="Lion with weight decay λ lands on the box-constrained optimum (‖x‖∞ ≤ 1/λ); AdamW with the same λ does not",
    demo="lion_opt.demo:run",
    kind="optimizer",
)
