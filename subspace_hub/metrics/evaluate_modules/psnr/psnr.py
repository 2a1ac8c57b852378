"""subspace-hub's ``psnr`` metric as an ``evaluate`` module: ``evaluate.load(<this folder>)``."""

import subspace_hub.metrics.hf_evaluate as _hub


class Psnr(_hub.SubspaceHubMetric):
    metric_name = "psnr"
