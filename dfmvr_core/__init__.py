"""dfmvr_core: the ROS-free heart of dfmvr (morphable models, geometry, rendering, networks, inference).

Never imports ROS. Units are SI (metres) everywhere; camera frames follow the optical convention
(x right, y down, z forward); views are ordered (left, front, right).
"""

__version__ = "0.1.0"
