print("hearth-agent")
