enum HearthProfilePlaceholder {}
