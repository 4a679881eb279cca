"""dic: joint denoising and lossy compression of noisy photographs."""
import warnings

__version__ = "0.1.0"

# CompressAI 1.2.8 scripts a helper with torch.jit at import, which torch 2.14 deprecates:
# one warning on every command that users can do nothing about.
warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated", category=FutureWarning)
