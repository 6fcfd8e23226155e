"""ROS 2-compatible MCAP bags: schemas, conversion, writer, reader, info, recorder and player logic.

Record/replay code never imports torch. The ``.msg`` definitions live in ``ros/mmstream_msgs``
(reached here through the ``msgs`` link) so a ROS 2 workspace can build the same types.
"""

from mmstream.bag.reader import BagMessage, BagReader
from mmstream.bag.writer import BagWriter, SplittingBagWriter

__all__ = ["BagMessage", "BagReader", "BagWriter", "SplittingBagWriter"]
