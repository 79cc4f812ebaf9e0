# nbgrader configuration of the refinenet-edu assignments (this folder is the course directory).
# Used by `nbgrader ...` run from this folder and by `refinenet-edu assignments release`.
c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)

c.CourseDirectory.course_id = "refinenet-edu"

# Students' unimplemented code raises NotImplementedError (nbgrader's default stub, stated here on purpose:
# the CI tests check that each student version fails with it at the first unimplemented part).
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Autograding executes every notebook with NBGRADER_EXECUTION set, so the notebooks run in FAST mode;
# the experiment assignment trains two small models, which takes about a minute on a laptop CPU.
c.Execute.timeout = 600
