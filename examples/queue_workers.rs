//! Tutorial "Queues", first example: a boss fills an unbounded queue with 24
//! tasks, then three workers take turns (`sleep(0)` after each task) until
//! the queue is empty.
use std::time::Duration;

use gevent::queue::Queue;

fn worker(tasks: Queue<u32>, name: &'static str) {
    while !tasks.is_empty() {
        let task = tasks.get();
        println!("Arbeiter {name} hat Task {task} bekommen");
        gevent::sleep(Duration::ZERO);
    }
    println!("Ende!");
}

fn main() {
    let tasks = Queue::new();
    let t = tasks.clone();
    gevent::spawn(move || {
        for i in 1..25 {
            t.put_nowait(i).expect("an unbounded queue has room");
        }
    })
    .join();
    let workers: Vec<_> = ["steve", "john", "nancy"]
        .into_iter()
        .map(|n| {
            gevent::spawn({
                let t = tasks.clone();
                move || worker(t, n)
            })
        })
        .collect();
    gevent::joinall(&workers);
}
