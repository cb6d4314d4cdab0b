"""vmflib: directional statistics of SGD minibatch gradients.

Reproduces and extends Lee, Cho & Kang, "Directional Analysis of Stochastic Gradient
Descent via von Mises-Fisher Distributions in Deep Learning" (arXiv:1810.00150).
"""

__version__ = "0.1.0"
