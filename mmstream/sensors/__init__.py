"""Sensor sources: cameras and video files, microphones and audio files, text streams.

Each module holds one kind of source and knows nothing about nodes or sockets; the node
executables in ``nodes/`` wire a source to a publisher.

* :mod:`mmstream.sensors.video_source` — OpenCV devices, files, network streams, test pattern.
* :mod:`mmstream.sensors.audio_source` — PortAudio capture with contiguous stamps, audio files.
* :mod:`mmstream.sensors.text_sources` — stdin, subtitles (.srt/.vtt), JSON lines, a ZeroMQ socket.
* :mod:`mmstream.sensors.devices` — what cameras and audio devices exist here.
"""
