// HearthUnwind: call frame information compiled into unwind tables (being written).
