raise RuntimeError("this flow file is broken on purpose")
