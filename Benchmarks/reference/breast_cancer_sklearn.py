"""scikit-learn's reference for configs/breast-cancer.yaml: the same file, the same split (the last 25% of the
rows as the test set, no shuffling), the same standardization (statistics of the training rows), the same
network (30 -> 16 relu -> 1 logistic output, Adam, learning rate 0.001, batch 32, 100 epochs, no L2 penalty),
over seeds 1-3.

Usage: python3 Benchmarks/reference/breast_cancer_sklearn.py [path to breast_cancer.csv]
"""
import sys
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

path = sys.argv[1] if len(sys.argv) > 1 else "/usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv"
data = np.loadtxt(path, delimiter=",", skiprows=1)
x, y = data[:, :-1], data[:, -1].astype(int)
cut = len(x) - int(len(x) * 0.25)
scaler = StandardScaler().fit(x[:cut])
train, test = scaler.transform(x[:cut]), scaler.transform(x[cut:])
warnings.simplefilter("ignore", ConvergenceWarning)
for seed in (1, 2, 3):
    mlp = MLPClassifier(hidden_layer_sizes=(16,), solver="adam", learning_rate_init=0.001, batch_size=32,
                        max_iter=100, alpha=0, shuffle=True, random_state=seed, n_iter_no_change=1000, tol=0)
    mlp.fit(train, y[:cut])
    print(f"MLPClassifier seed {seed}: test accuracy {mlp.score(test, y[cut:]):.4f}")
logistic = LogisticRegression(max_iter=5000).fit(train, y[:cut])
print(f"LogisticRegression: test accuracy {logistic.score(test, y[cut:]):.4f}")
