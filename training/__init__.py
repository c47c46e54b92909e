"""dfmvr_training (source folder ``training/``): datasets, synthetic data, the paper's losses, the
trainer and evaluation runs. Depends on :mod:`dfmvr_core`, never on :mod:`dfmvr_ros`."""
