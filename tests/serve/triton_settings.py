"""Settings the serving tests' repository is written with (conftest.py) and the tests rely on."""
IDLE_TIMEOUT_S = 4.0  # the sequence idle timeout: long enough for a busy machine, short enough to wait out in a test
SLOTS = 16
QUEUE_DELAY_US = 10_000  # the sequence batcher's max_queue_delay_microseconds
CHECK_SUFFIX = "_as_python"  # the full-Triton models' copies with the Python backend, loaded for Triton's checks
