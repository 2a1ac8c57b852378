"""subspace-hub's ``reconstruction`` metric as an ``evaluate`` module: ``evaluate.load(<this folder>)``."""

import subspace_hub.metrics.hf_evaluate as _hub


class Reconstruction(_hub.SubspaceHubMetric):
    metric_name = "reconstruction"
