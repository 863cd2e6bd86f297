# Writes the pod-side program (the .py files in IN, "|"-separated, in order) as a C++ raw string literal to OUT.
set(text "")
string(REPLACE "|" ";" IN "${IN}")
foreach(f ${IN})
  file(READ ${f} part)
  string(APPEND text "${part}\n")
endforeach()
file(WRITE ${OUT} "R\"autopod_py(${text})autopod_py\"\n")
