"""dfmvr_ros: the ROS 2 side of dfmvr (rclpy node, message conversions, rosbag replay).

Thin by design: every piece of logic the node needs lives in :mod:`dfmvr_core`. Modules that need rclpy
import it where used and fail with a clear message on machines without ROS 2.
"""
