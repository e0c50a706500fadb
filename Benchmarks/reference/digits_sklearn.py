"""scikit-learn's reference for configs/digits.yaml: the same file, the same split (the last 25% of the rows as
the test set, no shuffling, as Loom's data.test_split), the same scaling (x / 16), and the same network
(64 -> 64 relu -> 10 softmax, Adam, learning rate 0.001, batch 32, 50 epochs, no L2 penalty), over seeds 1-3.

Usage: python3 Benchmarks/reference/digits_sklearn.py [path to digits.csv.gz]
"""
import gzip
import sys
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

path = sys.argv[1] if len(sys.argv) > 1 else "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"
data = np.loadtxt(gzip.open(path), delimiter=",")
x, y = data[:, :-1] / 16, data[:, -1].astype(int)
cut = len(x) - int(len(x) * 0.25)
warnings.simplefilter("ignore", ConvergenceWarning)
for seed in (1, 2, 3):
    mlp = MLPClassifier(hidden_layer_sizes=(64,), solver="adam", learning_rate_init=0.001, batch_size=32,
                        max_iter=50, alpha=0, shuffle=True, random_state=seed, n_iter_no_change=1000, tol=0)
    mlp.fit(x[:cut], y[:cut])
    print(f"MLPClassifier seed {seed}: test accuracy {mlp.score(x[cut:], y[cut:]):.4f}")
logistic = LogisticRegression(max_iter=2000).fit(x[:cut], y[:cut])
print(f"LogisticRegression: test accuracy {logistic.score(x[cut:], y[cut:]):.4f}")
