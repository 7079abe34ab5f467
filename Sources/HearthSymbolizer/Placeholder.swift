enum HearthSymbolizerPlaceholder {}
