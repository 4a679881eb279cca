"""Installs the ``dic`` package from ``codes/``: ``pip install -e .``"""
from setuptools import find_packages, setup

# Ranges the code supports: the versions this repository is tested with are the lower bounds
# (CompressAI 1.2.x: the code uses its rANS coder and model internals). The exact versions CI
# and `make` install are pinned in constraints.txt, not here, so `pip install -e .` into an
# environment with its own torch (a CUDA build, a newer release) keeps that torch.
INSTALL_REQUIRES = [
    "torch>=2.14",
    "torchvision>=0.29",
    "compressai>=1.2.8,<1.3",
    "numpy>=1.26",  # CompressAI 1.2.8 itself asks for numpy<2
    "opencv-python-headless>=4.11",
    "pytorch-msssim>=1.0",
    "tensorboard>=2.21",
    "imagesize>=2.0",
    "scipy>=1.17",
    "pyyaml>=6.0",
    "tqdm>=4.70",
    "matplotlib>=3.11",
    "scikit-image>=0.26",
    "Pillow>=13.0",
]

setup(
    name="dic",
    version="0.1.0",
    description="Joint denoising and lossy compression of noisy photographs",
    package_dir={"": "codes"},
    packages=find_packages("codes"),
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": ["pytest>=9.2", "pytest-timeout>=2.4"]},
    entry_points={
        "console_scripts": [
            "dic=dic.apps.launch:dic",
            "dic-train=dic.apps.launch:dic_train",
            "dic-test=dic.apps.launch:dic_test",
        ]
    },
)
