"""Installs the ``dic`` package from ``codes/``: ``pip install -e .``"""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "torch==2.14.1",
    "torchvision==0.29.1",
    "compressai==1.2.8",
    "numpy<2",
    "opencv-python-headless",
    "pytorch-msssim",
    "tensorboard",
    "imagesize",
    "scipy",
    "pyyaml",
    "tqdm",
    "matplotlib",
    "scikit-image",
    "Pillow",
]

setup(
    name="dic",
    version="0.1.0",
    description="Joint denoising and lossy compression of noisy photographs",
    package_dir={"": "codes"},
    packages=find_packages("codes"),
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": ["pytest", "pytest-timeout"]},
    entry_points={
        "console_scripts": [
            "dic=dic.apps.cli:main",
            "dic-train=dic.apps.train:main",
            "dic-test=dic.apps.evaluate:main",
        ]
    },
)
