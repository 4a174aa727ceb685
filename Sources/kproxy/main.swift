import ArgumentParser

print("kproxy")
