"""subspace-hub's ``pa_mpjpe`` metric as an ``evaluate`` module: ``evaluate.load(<this folder>)``."""

import subspace_hub.metrics.hf_evaluate as _hub


class PaMpjpe(_hub.SubspaceHubMetric):
    metric_name = "pa_mpjpe"
