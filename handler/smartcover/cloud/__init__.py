"""The I/O shell towards Tencent Cloud: the COS client over cos-python-sdk-v5, its HTTP transport and thread
pool, and the SSM secret. Depends on the core's model, never on the planner."""
