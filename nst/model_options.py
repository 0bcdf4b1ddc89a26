"""The choices of model and optimiser a run can make, as data (no TensorFlow), for Settings and the model."""

PRECISIONS = ("auto", "fp32", "bf16")  # "auto": bf16 where the hardware runs it natively, else fp32
POOLINGS = ("avg", "max")
OPTIMIZERS = ("adam", "lbfgs")
