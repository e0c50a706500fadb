"""scikit-learn's reference for configs/boston-housing.yaml: the same file, the same split (the last 25% of the
rows as the test set, no shuffling), the same standardization (statistics of the training rows), the same network
(13 -> 64 relu -> 64 relu -> 1 linear output, squared error, Adam, learning rate 0.001, batch 16, 100 epochs, no
L2 penalty), over seeds 1-3; and a linear least-squares fit for scale. Prints the test mean absolute error and
root mean squared error (MEDV is in $1000s).

Usage: python3 Benchmarks/reference/boston_housing_sklearn.py [path to boston_house_prices.csv]
"""
import sys
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import StandardScaler

path = sys.argv[1] if len(sys.argv) > 1 else "/usr/lib/python3/dist-packages/sklearn/datasets/data/boston_house_prices.csv"
data = np.loadtxt(path, delimiter=",", skiprows=2)
x, y = data[:, :-1], data[:, -1]
cut = len(x) - int(len(x) * 0.25)
scaler = StandardScaler().fit(x[:cut])
train, test = scaler.transform(x[:cut]), scaler.transform(x[cut:])
warnings.simplefilter("ignore", ConvergenceWarning)


def report(name, predicted):
    error = predicted - y[cut:]
    print(f"{name}: test mae {np.abs(error).mean():.4f} - test rmse {np.sqrt((error ** 2).mean()):.4f}")


maes = []
for seed in (1, 2, 3):
    mlp = MLPRegressor(hidden_layer_sizes=(64, 64), solver="adam", learning_rate_init=0.001, batch_size=16,
                       max_iter=100, alpha=0, shuffle=True, random_state=seed, n_iter_no_change=1000, tol=0)
    mlp.fit(train, y[:cut])
    report(f"MLPRegressor seed {seed}", mlp.predict(test))
    maes.append(np.abs(mlp.predict(test) - y[cut:]).mean())
print(f"MLPRegressor mean test mae over seeds 1-3: {np.mean(maes):.4f}")
report("LinearRegression", LinearRegression().fit(train, y[:cut]).predict(test))
