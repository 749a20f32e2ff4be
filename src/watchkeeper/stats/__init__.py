"""The pure statistics core: numpy / scipy / pyarrow / datasketches only.

Nothing here touches files, the network, a database or a web framework.
"""
