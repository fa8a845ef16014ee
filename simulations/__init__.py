"""The 2012 replay as data and small functions, installed as `alexnet_keras.simulations`.

Leaderboards, the GTX 580 profile, the 2012 clock and the memory plan. Data files
carry a source for every row and load with `importlib.resources`.
"""
