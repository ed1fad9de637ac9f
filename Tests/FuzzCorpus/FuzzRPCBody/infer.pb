
turn on the lightsintent