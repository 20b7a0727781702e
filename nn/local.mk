# nn
