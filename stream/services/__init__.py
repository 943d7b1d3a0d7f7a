"""What every stream shares: the models, loaded once (runtime.py), behind services that queue and batch the
work of all streams (asr.py, inference.py). Stages hold a service, never a model."""
