enum HearthSamplerPlaceholder {}
